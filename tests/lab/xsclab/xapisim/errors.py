"""XenAPI failures as xapi reports them: a code followed by string parameters."""

from typing import List

NULL_REF = "OpaqueRef:NULL"


class ApiError(Exception):
    """An API call failure; becomes {'Status': 'Failure', 'ErrorDescription': [...]}."""

    def __init__(self, code: str, *params: object) -> None:
        super().__init__(code, *params)
        self.description: List[str] = [code] + [str(p) for p in params]


def handle_invalid(cls: str, ref: object) -> ApiError:
    return ApiError("HANDLE_INVALID", cls, ref)


def uuid_invalid(cls: str, uuid: object) -> ApiError:
    return ApiError("UUID_INVALID", cls, uuid)


def field_type_error(field: str) -> ApiError:
    return ApiError("FIELD_TYPE_ERROR", field)


def bad_power_state(vm_ref: str, expected: str, actual: str) -> ApiError:
    """xapi spells power states in lower case in this error."""
    return ApiError("VM_BAD_POWER_STATE", vm_ref, expected, actual.lower())
