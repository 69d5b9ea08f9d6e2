"""The broker. Its storage engine lives in ``logserver.log``; the server arrives with issue 3."""
