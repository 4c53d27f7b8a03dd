"""dms-agent: the small HTTP service each appliance runs (DESIGN §8). Imports nothing of Django."""
