"""One module per outside system; each has one error type and explicit timeouts."""
