"""The project as data and process: store, labels, pseudo labels, strategies, loop, job runner."""
