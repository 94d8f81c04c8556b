"""Transport to the upstreams, and nothing else: the pooled HTTP client, timeouts, guards on what an upstream
answers (status, redirects, content type, size), and failures classified as error values with an `outcome`.
It is given plain values (URL, headers, timeouts, limits, the secret to redact) and knows nothing of routes,
config, translation or the exchange that drives it (dragoman.exchange). SSE framing: dragoman.protocols.sse."""
