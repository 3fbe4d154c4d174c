"""The HTTP door's own rules, beside the handler that uses them: request bodies, who may
ask (API keys), where answers may go (callbacks). A door: nothing below imports it."""
