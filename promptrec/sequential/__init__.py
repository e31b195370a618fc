"""A trained sequential recommender (SASRec, optionally told when things happened): an eval
baseline and a retriever signal."""

from promptrec.sequential.config import SASRecConfig
from promptrec.sequential.model import SASRec
from promptrec.sequential.sequences import Sequence, user_sequences
from promptrec.sequential.store import load_model, save_model
from promptrec.sequential.train import TrainResult, train_sasrec

__all__ = ["SASRec", "SASRecConfig", "Sequence", "TrainResult", "load_model", "save_model", "train_sasrec",
           "user_sequences"]
