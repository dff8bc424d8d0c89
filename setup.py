"""Build and install ociruntime: the cffi shim is compiled here, never at run time."""

import os
import shutil
import sys

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithSchemas(build_py):
    """Ship schemas/*.json as package data and generate the fast schema validator from them."""

    def run(self) -> None:
        super().run()
        target = os.path.join(self.build_lib, "ociruntime")
        schemas = os.path.join(target, "schemas")
        os.makedirs(schemas, exist_ok=True)
        for name in sorted(os.listdir(os.path.join(HERE, "schemas"))):
            if name.endswith(".json"):
                shutil.copyfile(os.path.join(HERE, "schemas", name), os.path.join(schemas, name))
        sys.path.insert(0, HERE)
        from ociruntime._schemagen import generate_from_files

        with open(os.path.join(target, "_validators.py"), "w", encoding="utf-8") as out:
            out.write(generate_from_files(os.path.join(HERE, "schemas")))


setup(
    name="ociruntime",
    version="0.1.0",
    description="An OCI runtime-spec compliant container runtime, a drop-in for runc",
    python_requires=">=3.11",
    packages=find_packages(include=["ociruntime", "ociruntime.*"]),
    setup_requires=["cffi>=1.15"],
    install_requires=["cffi>=1.15", "jsonschema>=4.17", "pyroute2>=0.7"],
    cffi_modules=["csrc/build_shim.py:ffibuilder"],
    cmdclass={"build_py": BuildPyWithSchemas},
    # Not a console_scripts entry point: pip's wrapper for one starts Python with site and imports
    # `re` (~5 ms a call). scripts/ociruntime starts the venv's Python with -I -S instead.
    scripts=["scripts/ociruntime"],
)
