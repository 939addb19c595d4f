"""Operator extra links: buttons in the task's UI that open the remote job or resource."""
