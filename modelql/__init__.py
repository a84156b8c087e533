"""ModelQL composition root: settings, the application factory and the command line."""
