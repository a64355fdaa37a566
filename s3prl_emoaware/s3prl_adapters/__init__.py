"""Adapters between the package core and s3prl: compatibility layer, registration,
upstream experts and hub entry points. The core never imports from here."""
