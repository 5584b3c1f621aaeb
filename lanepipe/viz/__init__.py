"""Drawing: overlays, bird's-eye plots, comparison videos and the HTML report."""
