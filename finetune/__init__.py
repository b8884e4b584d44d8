"""Fine-tuning and evaluation of the assistant's models (``finassist finetune`` / ``finassist eval``)."""
