"""Build hook: a wheel carries conf/ and dvc.yaml inside the package, where `mnist-pipeline init`
finds them (a source checkout uses the repository's own; see mnist_pipeline.adopt.resource)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithResources(build_py):
    def run(self) -> None:
        super().run()
        resources = Path(self.build_lib) / "mnist_pipeline" / "resources"
        shutil.copytree("conf", resources / "conf", dirs_exist_ok=True)
        shutil.copy2("dvc.yaml", resources / "stages.yaml")


setup(cmdclass={"build_py": BuildWithResources})
