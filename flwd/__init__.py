"""flwd ("flowed"): a job engine for people who keep useful scripts around."""

__version__ = "0.1.0"

#: Variables flwd set in its own environment when it started (name → value), for the
#: libraries it runs itself (``flwd._entry``); its jobs inherit the environment it was
#: started with (:func:`flwd.execute.inherited_environment`).
OWN_ENVIRONMENT: dict[str, str] = {}
