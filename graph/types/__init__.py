"""Strawberry types of the public schema."""
