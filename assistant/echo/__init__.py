"""Echo cancellation: what the speaker plays, taken back out of what the microphone hears."""
