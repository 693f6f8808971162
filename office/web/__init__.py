"""The office web app (DESIGN §6): Starlette, Jinja2 templates, signed session cookies, roles."""
