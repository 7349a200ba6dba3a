"""The browser debug console (``GET /console``): live connections, channels, presence members
and events of each app, and an event creator. See the README's "Console" section."""
