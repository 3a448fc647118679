"""Google's Route Optimization API (``google.maps.routeoptimization.v1``) on routeopt's engine.

routeopt's ``routeopt.v1`` messages are wire-identical to Google's where they share a message
(same names, field numbers and types; routeopt's own fields take numbers Google does not use),
so Google's service is served by parsing its calls into routeopt's messages:

- :mod:`.schema`: Google's schema (field names and numbers, from :mod:`.schema_data`, generated
  from Google's published descriptors) and what routeopt does with each field;
- :mod:`.unknown`: a request field routeopt does not honour (known to Google's schema or not) is
  a violation naming the field, never dropped;
- :mod:`.storage`: the Cloud Storage contract (``gs://bucket/path`` under ``--storage-root``);
- :mod:`.service`: the ``google.maps.routeoptimization.v1.RouteOptimization`` handlers.
"""
