"""The payment gateway: hands payment instructions to the payment rail through an adapter (issue 14 point 6)."""
