"""Deploying fine-tuned models: ONNX export (`export`), the ONNX runner (`onnx_runner`)
and the HTTP service (`serve`)."""
