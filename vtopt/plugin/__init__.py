"""The plugin system: hook specs, the plugin manager, the component interfaces."""
