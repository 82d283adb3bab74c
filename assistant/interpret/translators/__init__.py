"""Translators behind one interface (``base.Translator``); ``factory`` picks one."""
