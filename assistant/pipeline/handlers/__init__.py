"""The stage handlers; a mode (``assistant/pipeline/modes``) lists the ones it runs."""
