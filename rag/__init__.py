"""rag-cite: conversational question answering over your documents with exact, verified citations.

Importing the package sets the offline defaults that every entry point (CLI, UI, tests,
benchmarks, training) needs, in this one place: nothing may reach the Hugging Face hub or send
telemetry at run time. ``setdefault`` leaves a value the user exported alone.
"""

from __future__ import annotations

import os

OFFLINE_ENVIRONMENT: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "ANONYMIZED_TELEMETRY": "False",
}

for _name, _value in OFFLINE_ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)
