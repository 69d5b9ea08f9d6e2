"""The broker's TCP side: connections, frames in, responses out in order."""
