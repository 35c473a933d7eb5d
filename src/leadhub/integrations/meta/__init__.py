"""Meta (Facebook / Instagram) lead ads: webhook, Graph client, field mapping, sync, fake Graph server."""
