//! Reports comparing P2P and standard runs: Markdown, CSV, HTML with SVG charts.
