"""Prompt templates, one per planner decision (package data)."""
