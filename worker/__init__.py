"""The worker: claims jobs and runs them; imports the app core, never the web app."""
