"""One Messages request's life, between the HTTP face (dragoman.server) and the transport (dragoman.upstreams):

- lifecycle.py — `Exchange`: the request's state (written only here) and its steps, open → answer/stream → finish;
- candidates.py — the candidate loop: fallbacks, retries, circuit breakers; per-config state in `Upstreams`;
- attempt.py — one try of one candidate, up to its JSON answer or its stream's first output;
- stream.py — a streamed answer as an async iterator of bytes;
- dialects/ — each upstream wire protocol (chat, responses, messages): translate/ glued to the transport;
- targets.py — a route as the plain values the transport takes;
- audit.py — the audit record a request leaves."""
