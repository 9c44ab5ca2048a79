"""Function URLs: configs (``service``), one listening port each (``listeners``), the HTTP side
(``front``), the payload 2.0 event (``event``), the inferred response (``reply``) and CORS."""
