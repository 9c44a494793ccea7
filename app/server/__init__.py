"""``palidesk serve``: PaliGemma 2 over HTTP, one more face on the session core.

Qt-free. The web stack (FastAPI, uvicorn, pydantic) is the optional extra
``palidesk[server]``: only ``app.server.web_app`` and the modules it imports need it, so
the window and the other commands work without it.
"""
