"""The ``s3prl-emoaware`` command line: one module per subcommand, loaded on demand."""
