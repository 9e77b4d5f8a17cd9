"""asr_analogy: adapt speech recognizers to new domains by task-vector arithmetic.

Layers (imports point one way): io -> ops -> merge -> speech -> analogy -> cli.
"""

__version__ = "0.1.0"
