"""The labelling tools' protocols, translated to and from PaliDesk's tasks and results.

Plain Python with no web framework and no Qt: the server's routes (app/server) parse the
request, call these functions, and send back what they return.

- Label Studio's ML backend: ``ls_config`` (which PaliDesk tasks a project's labelling
  config asks for), ``ls_predictions`` (the ``/predict`` answer), ``ls_rle`` (Label
  Studio's brush RLE), ``ls_images`` (which image URLs may be fetched, and fetching them).
- X-AnyLabeling's remote server: ``xany_models`` (the ``/v1/models`` listing and what a
  ``/v1/predict`` request asks for) and ``xany_shapes`` (the ``/v1/predict`` answer).

docs/labeltools.md describes the mappings.
"""
