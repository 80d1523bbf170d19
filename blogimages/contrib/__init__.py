"""Optional integrations with content management systems; each imports its CMS only inside."""
