"""flwd ("flowed"): a job engine for people who keep useful scripts around."""

__version__ = "0.1.0"
