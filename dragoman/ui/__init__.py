"""The dashboard served at /ui: static pages (dragoman/ui/static/, shipped in the wheel) that render the JSON admin
API, a signed session cookie opened with an admin key, and the few API endpoints only the dashboard needs
(/api/stats, /api/feed, /api/routes, /api/costs.csv)."""
