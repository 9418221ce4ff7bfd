"""Built-in plugins: sandboxes, exercises and reporters, registered like any third-party plugin."""
