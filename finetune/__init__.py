"""Fine-tuning and evaluation of the assistant's models (``finassist finetune`` / ``finassist eval``).

Where things are:

* ``config``: the training configurations (``ClassifyTrainConfig``, ``GenerateTrainConfig``); each
  field is a command-line option (``option``).
* ``data``: reading data files and hub datasets, splitting, sampling; ``classification_data``: a
  classification run's checked and split texts and labels.
* ``train_classifier``: ``train_classifier``, and fine-tuning the encoder (full or LoRA);
  ``train_head``: the head over frozen embeddings and TF-IDF features, with cross-validation;
  ``classifier_run``: what both share (the run directory, the validation report, the run file).
* ``train_generator``: supervised fine-tuning of a causal LM.
* ``evaluation``: the pure evaluators and report writers; ``evaluation.classifier_runner`` and
  ``evaluation.summarizer_runner``: ``finassist eval``, through the ``Assistant`` a user calls.
* ``runs``: writing run files and model cards; ``files``: atomic writes; ``recipes``: the shipped
  classifiers; ``cli``: the commands.

The package depends on ``assistant``; the assistant never imports it.
"""
