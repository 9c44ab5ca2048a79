"""Function URLs: configs (``service``), one listening port each (``listeners``), the HTTP side
(``front``), the payload 2.0 event (``event``), the inferred response (``reply``), CORS, and the
other event shapes a function may ask for with a tag (``formats``, ``shapes``: ``rest``, ``alb``)."""
