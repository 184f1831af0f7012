"""deploy-manager's library: discovery, planning and the adapters that apply a plan.

Nothing here defines a Prefect flow (those live in `flows/`), and nothing on the
discovery and planning path imports Prefect: see DESIGN.md.
"""
