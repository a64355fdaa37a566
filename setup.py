"""Build hook: ship ``s3prl_emoaware-autoload.pth`` at the root of site-packages.

All metadata is in setup.cfg. The only thing setup.cfg cannot express is a file placed
beside the packages (not inside one): the ``.pth`` line that installs our lazy s3prl hook
at start-up. ``pip uninstall`` removes it with the rest (it is listed in RECORD).
"""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "s3prl_emoaware-autoload.pth"


class BuildPyWithPth(build_py):
    def run(self):
        super().run()
        self.copy_file(PTH, os.path.join(self.build_lib, PTH), preserve_mode=0)

    def get_outputs(self, include_bytecode=1):
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, PTH)]


setup(cmdclass={"build_py": BuildPyWithPth})
