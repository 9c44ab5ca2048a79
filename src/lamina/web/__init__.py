"""lamina's HTTP/1.1 front: connections (``connection``) and the listening server (``server``)."""
