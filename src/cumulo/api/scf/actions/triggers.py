"""SCF actions on triggers: CreateTrigger, ListTriggers, DeleteTrigger, UpdateTriggerStatus."""

from __future__ import annotations

from typing import Any

from cumulo.api.scf.call import scf_time
from cumulo.models import Trigger


def trigger_info(trigger: Trigger) -> dict[str, Any]:
    """SCF's ``Trigger`` shape (as in GetFunction's ``Triggers``)."""
    return {
        "TriggerName": trigger.name,
        "Type": trigger.type,
        "TriggerDesc": trigger.description,
        "Qualifier": trigger.qualifier,
        "Enable": 1 if trigger.enabled else 0,
        "CustomArgument": trigger.custom_argument,
        "AddTime": scf_time(trigger.created_at),
        "ModTime": scf_time(trigger.updated_at),
        "AvailableStatus": "Available",
        "BindStatus": "on",
        "TriggerAttribute": "",
        "ResourceId": f"{trigger.namespace}/{trigger.function_name}/{trigger.name}",
        "Description": "",
    }
