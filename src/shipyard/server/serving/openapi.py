"""The OpenAPI document of the model server, with request schemas from the model signature."""

from __future__ import annotations

from typing import Any

from shipyard.services.serving import ServedModel

__all__ = ["openapi"]

_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "column": {"type": "string"}},
    "required": ["error"],
}


def openapi(served: ServedModel) -> dict[str, Any]:
    """OpenAPI 3.1 for ``served``: /predict takes records of its signature's columns."""
    version = served.version
    record = served.schema.json_schema()
    columns = {
        "type": "object",
        "properties": {
            name: {"type": "array", "items": schema}
            for name, schema in record["properties"].items()
        },
        "required": record["required"],
        "additionalProperties": False,
    }
    predictions = {
        "type": "object",
        "properties": {
            "predictions": {"type": "array"},
            "probabilities": {"type": "array", "items": {"type": "array"}},
            "request_id": {"type": "string"},
            "model": {"type": "string"},
            "version": {"type": "integer"},
        },
        "required": ["predictions", "request_id", "model", "version"],
    }

    def error(text: str) -> dict[str, Any]:
        return {"description": text, "content": {"application/json": {"schema": _ERROR}}}

    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{version.name} model server",
            "version": str(version.version),
            "description": f"Predictions of {version.ref} ({served.runtime} runtime).",
        },
        "components": {
            "schemas": {"Record": record, "Columns": columns, "Predictions": predictions}
        },
        "paths": {
            "/predict": {
                "post": {
                    "summary": "Predict rows",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {
                                            "type": "object",
                                            "properties": {
                                                "records": {
                                                    "type": "array",
                                                    "items": {
                                                        "$ref": "#/components/schemas/Record"
                                                    },
                                                }
                                            },
                                            "required": ["records"],
                                        },
                                        {
                                            "type": "object",
                                            "properties": {
                                                "columns": {"$ref": "#/components/schemas/Columns"}
                                            },
                                            "required": ["columns"],
                                        },
                                        {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/Record"},
                                        },
                                    ]
                                }
                            },
                            "text/csv": {"schema": {"type": "string"}},
                            "application/vnd.apache.arrow.stream": {
                                "schema": {"type": "string", "format": "binary"}
                            },
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "Predictions",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Predictions"}
                                }
                            },
                        },
                        "400": error("Malformed JSON, CSV or Arrow body"),
                        "413": error("Body over the size limit"),
                        "415": error("Unsupported content type"),
                        "422": error("Rows do not match the signature"),
                    },
                }
            },
            "/feedback": {
                "post": {
                    "summary": "Ground-truth labels by request id",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"labels": {"type": "object"}},
                                    "required": ["labels"],
                                }
                            }
                        },
                    },
                    "responses": {"200": {"description": "How many labels were stored"}},
                }
            },
            "/health": {
                "get": {"summary": "The process is up", "responses": {"200": {"description": "up"}}}
            },
            "/ready": {
                "get": {
                    "summary": "A model is loaded and the server takes requests",
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "not ready"},
                    },
                }
            },
            "/metadata": {
                "get": {
                    "summary": "Model, version, signature, runtime, lineage",
                    "responses": {"200": {"description": "metadata"}},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "text format"}},
                }
            },
        },
    }
