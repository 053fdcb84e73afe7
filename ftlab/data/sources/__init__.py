"""Dataset sources: each turns original files (or a hub copy) into train/validation/test + a TaskSpec,
under the contract in base.py (CONTRIBUTING.md: adding one)."""

from ftlab.data.sources.absa import SemEvalAbsaSource
from ftlab.data.sources.acl import AclArcSource
from ftlab.data.sources.agnews import AgNewsSource
from ftlab.data.sources.base import DataSource, LoadedData
from ftlab.data.sources.fewshot import FewShotSource
from ftlab.data.sources.glue import GlueSource
from ftlab.data.sources.goemotions import GoEmotionsSource
from ftlab.data.sources.local import LocalSource
from ftlab.data.sources.multi import MultiSource
from ftlab.data.sources.tweeteval import TweetEvalSource

__all__ = [
    "AclArcSource",
    "AgNewsSource",
    "DataSource",
    "FewShotSource",
    "GlueSource",
    "GoEmotionsSource",
    "LoadedData",
    "LocalSource",
    "MultiSource",
    "SemEvalAbsaSource",
    "TweetEvalSource",
]
