"""The pages: Manage Exports and the export page (`listing`), the wizard (`wizard`), run
reports (`runs`), the user's profile (`profile`) and the sources (`sources`). Every
action they offer is a call to exports/actions.py."""
