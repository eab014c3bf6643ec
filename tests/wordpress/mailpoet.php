<?php
/**
 * MailPoet's public PHP API as the plugin uses it: API::MP('v1')->getSubscriber(id) returns the
 * subscriber as an array (wp_user_id, status, ...) or throws for an unknown id;
 * getSubscribers(filter, limit, offset) pages through them.
 */

namespace MailPoet\API;

class API {
	public static function MP( $version ) {
		return new self();
	}

	public function getSubscriber( $subscriber_id ) {
		if ( ! isset( $GLOBALS['kw']['subscribers'][ $subscriber_id ] ) ) {
			throw new \Exception( 'This subscriber does not exist.' );
		}
		return $GLOBALS['kw']['subscribers'][ $subscriber_id ];
	}

	public function getSubscribers( array $filter = array(), int $limit = 50, int $offset = 0 ): array {
		return array_slice( array_values( $GLOBALS['kw']['subscribers'] ), $offset, $limit );
	}
}
