"""The live interpreter's engine parts: languages, stable captions, translators, export."""
