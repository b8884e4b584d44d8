"""The task table: every task the assistant runs, by name, in one place."""

from __future__ import annotations

from .ask import AskTask
from .base import Task
from .classify import ClassifyTask
from .summarize import SummarizeTask

TASKS: dict[str, type[Task]] = {
    SummarizeTask.name: SummarizeTask,
    ClassifyTask.name: ClassifyTask,
    AskTask.name: AskTask,
}

__all__ = ["TASKS", "Task", "AskTask", "ClassifyTask", "SummarizeTask"]
