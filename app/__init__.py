"""PPO Explorer web app: FastAPI routes over ppo_core, a page, and static assets."""

__version__ = "0.1.0"
