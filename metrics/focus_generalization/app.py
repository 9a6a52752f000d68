"""Entry point of the metric's Hugging Face Space (see the card's header); needs gradio there."""

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("focus_generalization.py")
launch_gradio_widget(module)
